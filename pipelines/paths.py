"""Where the project's own files are: SQL, data contracts, docs.

cxalign is installed in editable mode (`pip install -e .`, as `make` does), so
these are the checkout's folders.
"""

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SQL_DIR = PROJECT_ROOT / "sql"
CONTRACTS_DIR = PROJECT_ROOT / "data_contracts"
DOCS_DIR = PROJECT_ROOT / "docs"
