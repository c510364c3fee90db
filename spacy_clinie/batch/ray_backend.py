"""``--backend ray``: the same pipeline over Ray Data.

The input is read by the same readers as the local backend, inside one Ray
read task pinned to the driver's node (the dump need not be visible to the
other machines); blocks of records flow to an actor pool where each actor
loads the pipeline once and runs ``nlp.pipe`` over its batches
(``map_batches`` with a callable class); the driver takes the JSON records
back in input order and writes them through the same committer, so output,
quarantine and resume behave exactly as with ``--backend local``.

Workers on other machines must be able to load the model: give an installed
package name (``en_clinie_ade``, installed on every node) or a path on shared
storage, and install ``spacy-clinie`` there.
"""

import json
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple, Union

from .inputs import Record, read_records
from .records import doc_to_record, model_version
from .committer import Committer
from .pipeline import Failed, annotate_one, load_pipeline, release_memory
from .settings import PipeSettings

COLUMNS = ("index", "id", "text", "where", "reason", "meta")


def _block(rows: List[Any]) -> Any:
    import pyarrow as pa

    return pa.table(
        {
            "index": pa.array([r.index for r in rows], pa.int64()),
            "id": pa.array([r.id for r in rows], pa.string()),
            "text": pa.array([None if r.reason else r.text for r in rows], pa.string()),
            "where": pa.array([r.where for r in rows], pa.string()),
            "reason": pa.array([r.reason for r in rows], pa.string()),
            # record["meta"] as JSON text: its values may be of any JSON type
            "meta": pa.array([json.dumps(r.fields) if r.fields and not r.reason else None for r in rows], pa.string()),
        }
    )


def _datasource(input_path: Path, read_args: Dict[str, Any], block_rows: int) -> Any:
    """A Ray ``Datasource`` with a single read task that streams the checked
    records of ``input_path`` from ``read_args["start"]`` in blocks."""
    from ray.data.block import BlockMetadata
    from ray.data.datasource import Datasource, ReadTask

    class ClinieRecords(Datasource):
        def estimate_inmemory_data_size(self) -> Optional[int]:
            return None

        @property
        def supports_distributed_reads(self) -> bool:
            return False  # read where the driver is: the dump lives there

        def get_read_tasks(
            self, parallelism: int, per_task_row_limit: Optional[int] = None, data_context: Any = None
        ) -> List[Any]:
            def read() -> Iterator[Any]:
                rows: List[Any] = []
                for record in read_records(input_path, **read_args):
                    rows.append(record)
                    if len(rows) >= block_rows:
                        yield _block(rows)
                        rows = []
                if rows:
                    yield _block(rows)

            meta = BlockMetadata(
                num_rows=None, size_bytes=None, input_files=[str(input_path)], exec_stats=None
            )
            return [ReadTask(read, meta)]

    return ClinieRecords()


class Annotator:
    """The map_batches UDF: constructed once per actor (model load), then
    called per batch. Returns the input order, with a JSON record for good
    rows and ``None`` for quarantined ones."""

    def __init__(
        self,
        model: str,
        gpu_id: int,
        batch_size: int,
        spans_key: str,
        include_text: bool,
        code: Optional[str],
        recycle_every: int = 0,
        meta_fields: Optional[Dict[str, str]] = None,
        inference: str = "fp32",
        bucket_by_length: bool = False,
        fail_fast: bool = False,
    ) -> None:
        self._load = lambda: load_pipeline(model, gpu_id, code, inference, bucket_by_length)
        self.nlp = self._load()
        self.version = model_version(self.nlp)
        self.batch_size = batch_size
        self.spans_key = spans_key
        self.include_text = include_text
        self.recycle_every = recycle_every
        self.meta_fields = meta_fields or {}
        self.fail_fast = fail_fast
        self._since_load = 0

    def _meta(self, row: Dict[str, Any]) -> Dict[str, Any]:
        fields = json.loads(row["meta"]) if row.get("meta") else {}
        return {role: fields[name] for role, name in self.meta_fields.items() if name in fields}

    def __call__(self, batch: Any) -> Any:
        import pyarrow as pa

        rows = batch.to_pylist()
        good = [r for r in rows if not r["reason"]]
        if self.recycle_every and self._since_load >= self.recycle_every:
            self.nlp = None  # free the old vocab first: see local_backend.local_stream
            release_memory()
            self.nlp = self._load()
            self._since_load = 0
        self._since_load += len(good)
        texts = [r["text"] for r in good]
        try:
            results: List[Tuple[Any, Optional[str]]] = [
                (doc, None) for doc in self.nlp.pipe(texts, batch_size=self.batch_size)
            ]
        except Exception:
            if self.fail_fast:
                raise
            # as local_backend.local_stream: one record at a time, to find the culprit(s)
            results = [annotate_one(self.nlp, text) for text in texts]
        done, failed = {}, {}
        for row, (doc, reason) in zip(good, results):
            if reason is not None:
                failed[row["index"]] = reason
                continue
            record = doc_to_record(
                doc,
                row["id"],
                model=self.version,
                spans_key=self.spans_key,
                include_text=self.include_text,
                meta=self._meta(row),
            )
            done[row["index"]] = json.dumps(record, ensure_ascii=False)
        return pa.table(
            {
                "index": pa.array([r["index"] for r in rows], pa.int64()),
                "id": pa.array([r["id"] for r in rows], pa.string()),
                "where": pa.array([r["where"] for r in rows], pa.string()),
                "reason": pa.array([r["reason"] for r in rows], pa.string()),
                "record": pa.array([done.get(r["index"]) for r in rows], pa.string()),
                "failed": pa.array([failed.get(r["index"]) for r in rows], pa.string()),
            }
        )


def init_ray(address: Optional[str]) -> None:
    """Join ``address`` (or ``RAY_ADDRESS``, which ``ray.init`` reads), else
    start a local instance; a session the caller already started is used as
    is."""
    import ray

    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)


def ray_stream(
    model: str,
    start: int,
    committer: Committer,
    settings: PipeSettings,
    *,
    input_path: Path,
    fmt: str,
) -> Iterator[Tuple[int, str, None, Union[Dict[str, Any], Failed], Tuple[int, int]]]:
    """Yield ``(index, id, None, record or Failed, quarantine position)`` (no Doc) in input order;
    bad records are quarantined here, in order, as they come back."""
    try:
        import ray
        import ray.data
    except ImportError as err:
        raise ValueError("--backend ray needs Ray Data: pip install 'spacy-clinie[ray]'") from err
    if settings.output_format in ("brat", "tac-xml"):
        raise ValueError("--backend ray writes records (jsonl, table, fhir); run --format brat/tac-xml with --backend local")
    init_ray(settings.ray_address)
    ctx = ray.data.DataContext.get_current()
    ctx.execution_options.preserve_order = True
    ctx.enable_progress_bars = settings.progress
    read_args = {
        "fmt": fmt,
        "id_field": settings.id_field,
        "text_field": settings.text_field,
        "max_chars": settings.max_chars,
        "start": start,
        "extra_fields": list(settings.meta_fields().values()),
    }
    block_rows = max(settings.batch_size * 4, 256)
    # the read is one light task; asking no CPU for it keeps it from waiting
    # behind actors that hold every CPU of a small cluster
    ds = ray.data.read_datasource(_datasource(Path(input_path).resolve(), read_args, block_rows), num_cpus=0)
    ds = ds.map_batches(
        Annotator,
        fn_constructor_args=(
            str(model),
            0 if settings.ray_gpus_per_worker > 0 else -1,
            settings.batch_size,
            settings.spans_key,
            settings.include_text,
            str(Path(settings.code).resolve()) if settings.code else None,
            settings.recycle_every,
            settings.meta_fields(),
            settings.inference,
            settings.bucket_by_length,
            settings.fail_fast,
        ),
        batch_size=settings.batch_size,
        batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(size=settings.ray_workers),
        num_cpus=settings.ray_cpus_per_worker,
        num_gpus=settings.ray_gpus_per_worker,
    )
    q_state = (committer.q_bytes, committer.q_count)
    for batch in ds.iter_batches(batch_format="pyarrow", batch_size=None):
        for row in batch.to_pylist():
            if row["reason"]:
                q_state = committer.quarantine(
                    Record(row["index"], row["id"], None, row["where"], row["reason"])
                )
                continue
            if row["failed"]:  # a pipeline component raised on it: pending, as with --backend local
                record = Record(row["index"], row["id"], None, row["where"])
                yield row["index"], row["id"], None, Failed(record, row["failed"]), q_state
                continue
            yield row["index"], row["id"], None, json.loads(row["record"]), q_state
