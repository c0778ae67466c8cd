"""Runs the delivery worker (`worker: python worker.py` in the Procfile)."""

from portal.worker import main

if __name__ == "__main__":
    main()
