"""``python -m datatorag_processor``: parse, clean and chunk announced documents."""

from datatorag.lifeline import end_with_parent
from datatorag.log import configure, get_logger
from datatorag.settings import Settings
from datatorag_processor.bootstrap import bootstrap


def main() -> None:
    configure("processor")
    end_with_parent()
    worker = bootstrap(Settings())
    worker.install_signal_handlers()
    get_logger(__name__).info("processor.started")
    worker.run()


if __name__ == "__main__":
    main()
