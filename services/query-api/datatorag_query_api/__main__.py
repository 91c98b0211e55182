"""``python -m datatorag_query_api``: serve the HTTP API."""

import uvicorn

from datatorag.log import configure
from datatorag.settings import Settings
from datatorag_query_api.bootstrap import bootstrap


def main() -> None:
    configure("query-api")
    settings = Settings()
    uvicorn.run(
        bootstrap(settings),
        host=settings.host,
        port=settings.port,
        log_level="warning",
        timeout_graceful_shutdown=10,
    )


if __name__ == "__main__":
    main()
