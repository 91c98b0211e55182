"""``python -m datatorag_query_api``: the HTTP API in ``DATATORAG_API_WORKERS`` processes."""

import uvicorn

from datatorag.log import configure
from datatorag.settings import Settings


def main() -> None:
    configure("query-api")
    settings = Settings()
    uvicorn.run(
        "datatorag_query_api.bootstrap:app_from_environment",
        factory=True,
        workers=settings.api_workers,
        host=settings.host,
        port=settings.port,
        log_level="warning",
        timeout_graceful_shutdown=10,
    )


if __name__ == "__main__":
    main()
