"""SecretStore adapters: Fernet-encrypted objects in the blob store, or AWS Secrets Manager."""
