"""``python -m datatorag_embedder``: embed chunk sets and swap them into the index."""

from datatorag.lifeline import end_with_parent
from datatorag.log import configure, get_logger
from datatorag.settings import Settings
from datatorag_embedder.bootstrap import CONCURRENCY, bootstrap


def main() -> None:
    configure("embedder-client")
    end_with_parent()
    worker = bootstrap(Settings())
    worker.install_signal_handlers()
    get_logger(__name__).info("embedder.started", concurrency=CONCURRENCY)
    worker.run(concurrency=CONCURRENCY)


if __name__ == "__main__":
    main()
