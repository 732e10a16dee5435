#!/usr/bin/env python3
"""Reads a `scale-diffusion export` back with the ecosystem's readers and compares every frame
with the clean layout it came from (`tests/e2e/export.rs` runs it; see docs/EXPORT.md).

    check_export.py lerobot    CLEAN OUT [--lerobot require|auto|skip]
    check_export.py webdataset CLEAN OUT

The expectation is computed here, from each manifest's `aligned.json` and `quality.json`, apart
from the Rust code that wrote the export: frame counts, timestamps (the real PTS, relative to the
episode's first frame), actions, states and quality masks must be equal; every video frame must sit
at its row's time and show that row's picture (closest to its own JPEG among its neighbours'). The
LeRobot dataset is also loaded with `lerobot` itself when it is installed (`--lerobot require`
makes its absence a failure). Prints one line of figures; exits 1 with the differences.
"""

import hashlib
import io
import json
import math
import pathlib
import sys

import av
import numpy as np
import pyarrow.parquet as pq

ACTION = ["key_w", "key_a", "key_s", "key_d", "mouse_dx", "mouse_dy", "throttle", "brake", "steer"]
STATE = ["x", "y", "z", "yaw", "speed"]
CAMERA = "observation.images.front"
# The mask's bits as docs/EXPORT.md gives them: bit i is CLEAN's check i, then pose_from_gap.
MASK_BITS = {name: bit for bit, name in enumerate([
    "blur", "black", "washed_out", "frozen", "glitch", "key_spam", "impossible_inputs",
    "inconsistent_inputs", "no_driving_action", "frame_rate", "frame_gap", "bursts",
    "decode_errors", "alignment_confidence", "duplicate", "pose_from_gap",
])}

problems = []


def fail(message):
    problems.append(message)
    if len(problems) <= 40:
        print("MISMATCH", message, file=sys.stderr)


def segments(clean):
    """Every published segment, read through the manifests: (key, aligned, quality, prompt, folder)."""
    out = []
    for manifest_path in sorted(clean.glob("*/*/manifest.json")):
        manifest = json.loads(manifest_path.read_text())
        session_dir = manifest_path.parent
        listed = {f["path"] for f in manifest["files"]}
        prompt = None
        if "session.json" in listed:
            prompt = json.loads((session_dir / "session.json").read_text()).get("prompt")
        if not prompt or not prompt.strip():
            prompt = "drive"
        for seg in manifest["segments"]:
            folder = session_dir / f"segment_{seg['segment']:03d}"
            objects = {o["path"]: o for o in seg["objects"]}
            aligned = json.loads((folder / "aligned.json").read_text())
            quality = json.loads((folder / "quality.json").read_text())
            key = f"{manifest['wallet']}/{manifest['session_id']}/segment_{seg['segment']:03d}"
            out.append((key, aligned, quality, prompt, folder, objects))
    return out


def expected_rows(aligned, quality, bits):
    flagged = {}
    for check in quality["checks"]:
        for frame in check.get("frames", []):
            flagged[frame] = flagged.get(frame, 0) | (1 << bits[check["check"]])
    base = next((r["pts_ms"] for r in aligned["frames"] if r["pts_ms"] is not None), 0.0)
    rows, last = [], 0.0
    nan = float("nan")
    for r in aligned["frames"]:
        known = r["timing"] == "measured" and r["pts_ms"] is not None
        ts = (r["pts_ms"] - base) / 1000.0 if r["pts_ms"] is not None else last
        last = ts
        mask = flagged.get(r["frame"], 0)
        if not known:
            mask |= 1 << bits["bursts"]
        keys = r["driving_keys"] if known else None
        controls = r["controls"] if known else None

        def value(v):
            return nan if v is None else float(v)

        action = [
            nan if keys is None else float(keys[k]) for k in ("w", "a", "s", "d")
        ] + [
            value(r["mouse_dx"]) if known else nan,
            value(r["mouse_dy"]) if known else nan,
        ] + [nan if controls is None else value(controls[c]) for c in ("throttle", "brake", "steer")]
        pose = r["pose"]
        if pose is None:
            state = [nan] * 5
        else:
            state = [pose["pos"][0], pose["pos"][1], pose["pos"][2], pose["yaw"], pose["speed"]]
            if pose["from_gap"]:
                mask |= 1 << bits["pose_from_gap"]
        rows.append({
            "frame": r["frame"], "ts": ts, "known": known, "file": r["file"],
            "action": np.array(action, dtype=np.float32), "state": np.array(state, dtype=np.float32),
            "mask": mask, "pts_ms": r["pts_ms"],
        })
    return rows


def same_vector(a, b):
    a, b = np.asarray(a, dtype=np.float32), np.asarray(b, dtype=np.float32)
    return a.shape == b.shape and bool(np.all((a == b) | (np.isnan(a) & np.isnan(b))))


# Pictures are compared at a quarter of their width and height (swscale's area average): enough
# to tell neighbouring frames apart, a sixteenth of the work.
SCALE = 4


def small_rgb(frame):
    return frame.reformat(width=max(frame.width // SCALE, 2), height=max(frame.height // SCALE, 2),
                          format="rgb24", interpolation="AREA").to_ndarray().astype(np.int16)


def rgb_of_jpeg(path):
    with av.open(str(path)) as container:
        return small_rgb(next(container.decode(video=0)))


def check_pictures(key, rows, folder, decoded):
    """`decoded`: the episode's video frames as RGB arrays, one per row. Each must be closest to
    its own row's JPEG among its neighbours' (when those differ) and near it."""
    worst = 0.0
    jpegs = [rgb_of_jpeg(folder / r["file"]) for r in rows]
    for i, picture in enumerate(decoded):
        own = float(np.abs(picture - jpegs[i]).mean())
        worst = max(worst, own)
        if own > 12.0:
            fail(f"{key}: frame {rows[i]['frame']} differs from its JPEG by {own:.1f} of 255")
        for j in (i - 1, i + 1):
            if 0 <= j < len(jpegs):
                between = float(np.abs(jpegs[j] - jpegs[i]).mean())
                other = float(np.abs(picture - jpegs[j]).mean())
                if between > 3.0 and other < own:
                    fail(f"{key}: video frame {i} looks more like row {j}'s JPEG ({other:.1f}) than its own ({own:.1f})")
    return worst


def check_lerobot(clean, out, lerobot_mode):
    info = json.loads((out / "meta/info.json").read_text())
    if info["codebase_version"] != "v3.0":
        fail(f"codebase_version {info['codebase_version']}")
    features = info["features"]
    if features["action"]["names"] != ACTION or features["observation.state"]["names"] != STATE:
        fail("action or state names")
    if features["quality.mask"]["info"]["bits"] != MASK_BITS:
        fail(f"mask bits {features['quality.mask']['info']['bits']}, documented {MASK_BITS}")
    bits = MASK_BITS
    expected = segments(clean)
    episodes = pq.read_table(sorted((out / "meta/episodes").glob("*/*.parquet"))[0]).to_pylist()
    if len(episodes) != len(expected) or info["total_episodes"] != len(expected):
        fail(f"{len(episodes)} episodes (info: {info['total_episodes']}), the clean layout has {len(expected)} segments")
    by_key = {f"{e['source/wallet']}/{e['source/session_id']}/segment_{e['source/segment']:03d}": e for e in episodes}
    if len(by_key) != len(episodes):
        fail("an episode is listed twice")
    data_files = sorted((out / "data").glob("*/*.parquet"))
    data = pq.read_table(data_files[0]) if len(data_files) == 1 else None
    tables = [pq.read_table(p) for p in data_files]
    columns = {name: [] for name in tables[0].column_names} if tables else {}
    for t in tables:
        for name in columns:
            columns[name].extend(t.column(name).to_pylist())
    del data
    total = len(columns.get("index", []))
    if columns.get("index") != list(range(total)) or info["total_frames"] != total:
        fail(f"the global index is not 0..{total} (info says {info['total_frames']} frames)")
    import pandas as pd
    tasks = pd.read_parquet(out / "meta/tasks.parquet")
    if tasks.index.name != "task":
        fail(f"tasks.parquet's index is {tasks.index.name!r}, LeRobot reads `task`")
    task_of = {int(row.task_index): task for task, row in tasks.iterrows()}

    videos = {}
    jpeg_of_row = {}
    frames_checked = 0
    worst_picture = 0.0
    worst_time = 0.0
    masked = 0
    for key, aligned, quality, prompt, folder, _objects in expected:
        episode = by_key.get(key)
        if episode is None:
            fail(f"{key}: not exported")
            continue
        rows = expected_rows(aligned, quality, bits)
        lo, hi = episode["dataset_from_index"], episode["dataset_to_index"]
        if hi - lo != len(rows) or episode["length"] != len(rows):
            fail(f"{key}: {hi - lo} rows, aligned.json has {len(rows)}")
            continue
        if episode["tasks"] != [prompt]:
            fail(f"{key}: tasks {episode['tasks']}, the prompt is {prompt!r}")
        for n, row in enumerate(rows):
            i = lo + n
            jpeg_of_row[i] = folder / row["file"]
            got_ts = columns["timestamp"][i]
            if np.float32(got_ts) != np.float32(row["ts"]):
                fail(f"{key}: frame {row['frame']} timestamp {got_ts}, expected {row['ts']}")
            if not same_vector(columns["action"][i], row["action"]):
                fail(f"{key}: frame {row['frame']} action {columns['action'][i]}, expected {row['action']}")
            if not same_vector(columns["observation.state"][i], row["state"]):
                fail(f"{key}: frame {row['frame']} state {columns['observation.state'][i]}, expected {row['state']}")
            if columns["quality.mask"][i] != row["mask"]:
                fail(f"{key}: frame {row['frame']} mask {columns['quality.mask'][i]}, expected {row['mask']}")
            if columns["source.frame"][i] != row["frame"] or columns["frame_index"][i] != n:
                fail(f"{key}: row {n} is frame {columns['source.frame'][i]}, expected {row['frame']}")
            if columns["episode_index"][i] != episode["episode_index"]:
                fail(f"{key}: row {n} names episode {columns['episode_index'][i]}")
            if task_of.get(columns["task_index"][i]) != prompt:
                fail(f"{key}: row {n} task index {columns['task_index'][i]}")
            masked += row["mask"] != 0
        # The video: every row's frame at from + timestamp, showing its picture.
        vfile = out / f"videos/{CAMERA}/chunk-{episode[f'videos/{CAMERA}/chunk_index']:03d}/file-{episode[f'videos/{CAMERA}/file_index']:03d}.mp4"
        if vfile not in videos:
            with av.open(str(vfile)) as container:
                videos[vfile] = [(float(f.pts * f.time_base), small_rgb(f)) for f in container.decode(video=0)]
        start, end = episode[f"videos/{CAMERA}/from_timestamp"], episode[f"videos/{CAMERA}/to_timestamp"]
        mine = [(t, pic) for t, pic in videos[vfile] if start - 1e-6 <= t < end - 1e-6]
        if len(mine) != len(rows):
            fail(f"{key}: {len(mine)} video frames in [{start}, {end}), {len(rows)} rows")
            continue
        for (t, _), row in zip(mine, rows):
            if row["known"]:
                off = abs(t - (start + row["ts"]))
                worst_time = max(worst_time, off)
                if off > 1e-4:
                    fail(f"{key}: frame {row['frame']} sits at {t:.6f} s, its row says {start + row['ts']:.6f} s")
        worst_picture = max(worst_picture, check_pictures(key, rows, folder, [pic for _, pic in mine]))
        frames_checked += len(rows)

    loaded = "lerobot not loaded"
    LeRobotDataset = None
    if lerobot_mode != "skip":
        try:
            from lerobot.datasets.lerobot_dataset import LeRobotDataset
        except ImportError as err:
            loaded = "lerobot not installed"
            if lerobot_mode == "require":
                fail(f"lerobot is not importable: {err}")
    if LeRobotDataset is not None and total > 0:
        dataset = LeRobotDataset("local/scale-diffusion-export", root=out, video_backend="pyav")
        if len(dataset) != total or dataset.num_episodes != len(expected):
            fail(f"LeRobotDataset: {len(dataset)} frames, {dataset.num_episodes} episodes")
        # Every episode's first and last frame, and one in between.
        picks = sorted({i for e in episodes for i in (e["dataset_from_index"], (e["dataset_from_index"] + e["dataset_to_index"]) // 2, e["dataset_to_index"] - 1)})
        for i in picks:
            item = dataset[i]
            if not same_vector(item["action"].numpy(), columns["action"][i]):
                fail(f"LeRobotDataset[{i}] action {item['action']}")
            if int(item["quality.mask"]) != columns["quality.mask"][i]:
                fail(f"LeRobotDataset[{i}] mask")
            if np.float32(item["timestamp"].item()) != np.float32(columns["timestamp"][i]):
                fail(f"LeRobotDataset[{i}] timestamp")
            shape = tuple(item[CAMERA].shape)
            if shape != (3, features[CAMERA]["shape"][0], features[CAMERA]["shape"][1]):
                fail(f"LeRobotDataset[{i}] picture {shape}")
            else:
                # Its picture is its row's JPEG (block means at the comparison scale).
                picture = (item[CAMERA].numpy() * 255.0).transpose(1, 2, 0)
                h, w = picture.shape[0] // SCALE * SCALE, picture.shape[1] // SCALE * SCALE
                small = picture[:h, :w].reshape(h // SCALE, SCALE, w // SCALE, SCALE, 3).mean(axis=(1, 3))
                jpeg = rgb_of_jpeg(jpeg_of_row[i])
                hh, ww = min(small.shape[0], jpeg.shape[0]), min(small.shape[1], jpeg.shape[1])
                off = float(np.abs(small[:hh, :ww] - jpeg[:hh, :ww]).mean())
                if off > 12.0:
                    fail(f"LeRobotDataset[{i}] picture differs from its JPEG by {off:.1f} of 255")
            if item["task"] != task_of[columns["task_index"][i]]:
                fail(f"LeRobotDataset[{i}] task {item['task']!r}")
        loaded = f"lerobot {__import__('lerobot').__version__}: {len(picks)} items loaded"
    print(f"lerobot export: {len(expected)} episodes, {frames_checked} frames checked "
          f"({masked} masked), worst time offset {worst_time * 1e6:.1f} us, worst picture "
          f"difference {worst_picture:.2f}/255; {loaded}")


def check_webdataset(clean, out):
    import webdataset as wds
    expected = {key.replace("/", "_"): (key, a, q, p, f, o) for key, a, q, p, f, o in segments(clean)}
    shards = sorted(str(p) for p in out.glob("shard-*.tar"))
    seen = set()
    frames_checked = 0
    masked = 0
    for sample in wds.WebDataset(shards, shardshuffle=False, empty_check=False):
        skey = sample["__key__"]
        if skey in seen:
            fail(f"{skey}: twice in the shards")
        seen.add(skey)
        if skey not in expected:
            fail(f"{skey}: not a published segment")
            continue
        key, aligned, quality, prompt, folder, objects = expected[skey]
        doc = json.loads(sample["json"])
        if doc["mask_bits"] != MASK_BITS:
            fail(f"{key}: mask bits {doc['mask_bits']}")
        bits = MASK_BITS
        rows = expected_rows(aligned, quality, bits)
        if len(doc["frames"]) != len(rows) or doc["task"] != prompt:
            fail(f"{key}: {len(doc['frames'])} frames, task {doc['task']!r}")
            continue
        if [c["check"] for c in doc["checks"]] != [c["check"] for c in quality["checks"]]:
            fail(f"{key}: checks differ from quality.json")
        for got, row in zip(doc["frames"], rows):
            action = [math.nan if got["action"][n] is None else got["action"][n] for n in ACTION]
            state = [math.nan if got["state"][n] is None else got["state"][n] for n in STATE]
            if got["frame"] != row["frame"] or np.float32(got["timestamp"]) != np.float32(row["ts"]):
                fail(f"{key}: frame {got['frame']} at {got['timestamp']}, expected {row['frame']} at {row['ts']}")
            if not same_vector(action, row["action"]) or not same_vector(state, row["state"]):
                fail(f"{key}: frame {row['frame']} action/state differ")
            if got["mask"] != row["mask"] or sorted(got["mask_names"]) != sorted(n for n, b in bits.items() if row["mask"] >> b & 1):
                fail(f"{key}: frame {row['frame']} mask {got['mask']}, expected {row['mask']}")
            masked += row["mask"] != 0
            if doc["frames_as"] == "jpg":
                data = sample.get(got["member"])
                listed = objects.get(f"segment_{key.rsplit('_', 1)[1]}/{row['file']}")
                if data is None or listed is None or hashlib.sha256(data).hexdigest() != listed["sha256"]:
                    fail(f"{key}: frame {row['frame']}'s JPEG is not the published one")
        if doc["frames_as"] == "mp4":
            with av.open(io.BytesIO(sample["mp4"])) as container:
                decoded = [(float(f.pts * f.time_base), small_rgb(f)) for f in container.decode(video=0)]
            if len(decoded) != len(rows):
                fail(f"{key}: the MP4 has {len(decoded)} frames, {len(rows)} rows")
            else:
                for (t, _), row in zip(decoded, rows):
                    if row["known"] and abs(t - row["ts"]) > 1e-4:
                        fail(f"{key}: frame {row['frame']} at {t:.6f} s in the MP4, row says {row['ts']:.6f}")
                check_pictures(key, rows, folder, [pic for _, pic in decoded])
        frames_checked += len(rows)
    for skey in sorted(set(expected) - seen):
        fail(f"{skey}: published but not in the shards")
    print(f"webdataset export: {len(seen)} samples in {len(shards)} shards, {frames_checked} frames checked ({masked} masked)")


def main():
    if len(sys.argv) < 4 or sys.argv[1] not in ("lerobot", "webdataset"):
        print(__doc__, file=sys.stderr)
        return 2
    clean, out = pathlib.Path(sys.argv[2]), pathlib.Path(sys.argv[3])
    mode = "auto"
    if "--lerobot" in sys.argv:
        mode = sys.argv[sys.argv.index("--lerobot") + 1]
    if sys.argv[1] == "lerobot":
        check_lerobot(clean, out, mode)
    else:
        check_webdataset(clean, out)
    if problems:
        print(f"{len(problems)} differences", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
