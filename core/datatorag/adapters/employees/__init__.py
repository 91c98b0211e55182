"""EmployeeDirectory adapters: SQLite on the embedded default, DynamoDB on AWS."""
