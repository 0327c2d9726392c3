"""The Parquet contract of a statistics store (DESIGN.md): part-file schema, column
order as read back, and where the run metadata lives."""

from __future__ import annotations

import pyarrow as pa

from ..probe.records import RECORD_SCHEMA

#: Columns the store adds to the probe's records: what the rows are of (``test_set``:
#: ``photos``, ``synthetic`` or a folder's name; stores written before it read as photos).
RUN_FIELDS = [
    pa.field("model", pa.string()),
    pa.field("task", pa.string()),
    pa.field("test_set", pa.string()),
]
#: The test set of rows from stores written before the column existed.
DEFAULT_TEST_SET = "photos"
#: The training step of rows recorded during training (null otherwise; stores written
#: before the column existed read back with it null).
STEP_FIELD = pa.field("step", pa.int64())
_RECORDS = list(RECORD_SCHEMA)
_BEFORE_VALUE = _RECORDS[:-1] + [STEP_FIELD] + _RECORDS[-1:]
#: Columns of every part file (``regime`` comes from the Hive directory name).
PART_SCHEMA = pa.schema(RUN_FIELDS + _RECORDS)
#: Columns of a part file of rows recorded during training.
STEP_PART_SCHEMA = pa.schema(RUN_FIELDS + _BEFORE_VALUE)
#: The statistics table as read back, in the order of DESIGN.md.
STATS_SCHEMA = pa.schema(RUN_FIELDS + [pa.field("regime", pa.string())] + _BEFORE_VALUE)
COLUMNS: tuple[str, ...] = tuple(STATS_SCHEMA.names)
#: Key of the run metadata (JSON) in every part file's schema metadata.
META_KEY = b"tlc_probe.run"
#: The run metadata beside the data ("_": pyarrow and pandas.read_parquet(DIR) skip it).
RUN_JSON = "_run.json"
