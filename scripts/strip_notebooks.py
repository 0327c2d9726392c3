"""Strip notebook outputs before committing, keeping those of ``# NBVAL_CHECK_OUTPUT`` cells.

Usage: ``python scripts/strip_notebooks.py notebooks/*.ipynb`` after executing them
(``jupyter nbconvert --to notebook --execute --inplace ...``). nbval compares the kept
outputs when ``make test`` runs the notebooks; it needs their execution counts, so those
cells keep a count and every other cell is cleared.
"""

import sys

import nbformat


def strip(path: str) -> None:
    """Rewrite the notebook at ``path`` with only the checked cells' outputs."""
    nb = nbformat.read(path, as_version=4)
    count = 0
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        count += 1
        if "NBVAL_CHECK_OUTPUT" in cell.source:
            cell.execution_count = count
            for out in cell.outputs:
                if "execution_count" in out:
                    out["execution_count"] = count
        else:
            cell.outputs, cell.execution_count = [], None
    nbformat.write(nb, path)


if __name__ == "__main__":
    for p in sys.argv[1:]:
        strip(p)
