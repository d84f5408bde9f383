"""The delivery worker's entry point: ``python -m workers.delivery`` from the repository, like
the installed ``sessiond-delivery``; the worker itself is :mod:`sessiond.workers.delivery`."""

from sessiond.workers.delivery import main

if __name__ == "__main__":
    main()
