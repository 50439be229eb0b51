"""percetrain's TensorBoard event files (output.dir/tb/) read by the tensorboard package's own
reader (EventFileLoader for the raw events, EventAccumulator as TensorBoard's UI loads a run):
every numeric key of every metrics.jsonl row is a scalar under its documented tag (docs/training.md,
"TensorBoard"), at the row's step, with the row's value as float32 (exactly); the first event is
the file version; no (tag, step) twice. A run stopped with --stop-after and resumed gives the same
tags and steps as an uninterrupted one and the same values for train/ and valid/ (resumed =
uninterrupted holds bitwise in fp32 on the CPU; speed/ holds timings and is left out)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, Checks, Workdir, percetrain, read_jsonl, skip  # noqa: E402

try:
    import numpy as np
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator, SCALARS
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
except ImportError as e:
    skip(f"{e.name} is missing from the reference environment; bash scripts/setup.sh --venv installs requirements.txt")

SPEED = {"tokens", "tokens_per_s", "response_tokens", "step_seconds", "peak_memory_mib"}


def tag(key, user):
    """The documented tag of a metrics.jsonl key (None: not a curve)."""
    if key in ("step", "user_step"):
        return None
    if user:
        return f"{user}/{key}"
    if key.startswith("valid_"):
        return "valid/" + key[len("valid_"):]
    if key.startswith("generate_"):
        return "valid/" + key
    if key in SPEED or key.startswith("comm_"):
        return "speed/" + key
    return "train/" + key


def expected_scalars(rows):
    """tag -> [(step, float32 value)] from metrics.jsonl rows."""
    out = {}
    for row in rows:
        for key, value in row.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            t = tag(key, row.get("user") if isinstance(row.get("user"), str) else "")
            if t:
                out.setdefault(t, []).append((row["step"], float(np.float32(value))))
    return out


def tensorboard_scalars(tb):
    acc = EventAccumulator(str(tb), size_guidance={SCALARS: 0})  # 0: keep every event
    acc.Reload()
    return {t: [(e.step, e.value) for e in acc.Scalars(t)] for t in acc.Tags()["scalars"]}


def check_run(checks, name, run):
    files = sorted((run / "tb").glob("*tfevents*"))
    checks.equal(f"{name}: one event file in tb/", len(files), 1)
    if not files:
        return {}
    checks.true(f"{name}: file name", files[0].name.startswith("events.out.tfevents."), files[0].name)
    events = list(EventFileLoader(str(files[0])).Load())
    checks.equal(f"{name}: first event is the file version", events[0].file_version, "brain.Event:2")
    seen = [(e.step, v.tag) for e in events[1:] for v in e.summary.value]
    checks.equal(f"{name}: no (step, tag) twice", len(seen), len(set(seen)))
    got = tensorboard_scalars(run / "tb")
    want = expected_scalars(read_jsonl(run / "metrics.jsonl"))
    checks.equal(f"{name}: tags", sorted(got), sorted(want))
    for t in sorted(want):
        checks.equal(f"{name}: {t} steps and values (float32) as in metrics.jsonl", got.get(t), want[t])
    return got


def main():
    checks = Checks("TensorBoard event files")
    with Workdir("tensorboard") as work:
        percetrain("init-model", "--arch", "llama", "--tokenizer", ROOT / "data" / "tokenizer", "--out", work / "model")

        def train(out, *extra):
            percetrain("train", "--quiet", "--config", ROOT / "configs" / "demo.json",
                       "--set", f"model.path={work / 'model'}", "--set", f"output.dir={work / out}",
                       "--set", "data.max_records=32", "--set", "train.epochs=2", "--set", "train.log_every=1",
                       "--set", "train.eval_every=2", "--set", "train.save_every=3", *extra)

        train("whole")
        train("resumed", "--stop-after", "4")  # checkpoint at step 3; steps 4.. are trimmed on resume
        stopped = check_run(checks, "stopped at step 4", work / "resumed")
        checks.equal("stopped at step 4: last step", max(s for v in stopped.values() for s, _ in v), 4)
        train("resumed", "--resume")
        whole = check_run(checks, "uninterrupted", work / "whole")
        resumed = check_run(checks, "resumed", work / "resumed")
        checks.equal("resumed = uninterrupted: tags", sorted(resumed), sorted(whole))
        for t in sorted(whole):
            if t not in resumed:
                continue
            checks.equal(f"resumed = uninterrupted: {t} steps", [s for s, _ in resumed[t]], [s for s, _ in whole[t]])
            if not t.startswith("speed/"):
                checks.close(f"resumed = uninterrupted: {t} values", [v for _, v in resumed[t]],
                             [v for _, v in whole[t]], atol=0.0)
    checks.finish()


if __name__ == "__main__":
    main()
