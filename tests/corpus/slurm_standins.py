"""``sbatch``/``srun``/``scontrol`` stand-ins for Slurm rehearsals: put :func:`install`'s dir first on PATH.

``sbatch`` runs the submitted script at once, every array task in turn, with the variables Slurm sets
(``SLURM_ARRAY_TASK_ID``, ``SLURM_ARRAY_JOB_ID``, ``SLURM_JOB_ID``, ``SLURM_ARRAY_TASK_COUNT``, ``SLURM_NODELIST``,
``SLURM_NODEID``, ``SLURM_PROCID``) plus what ``--export=ALL,K=V`` adds (datatrove's ``RUN_OFFSET``). It refuses an
``--array`` wider than ``STANDIN_MAX_ARRAY`` (like ``MaxArraySize``) and an ``afterok`` dependency on a job that
did not succeed (``#SBATCH --dependency`` or the flag), logs each submission to
``STATE/submissions.jsonl`` and prints ``Submitted batch job N``.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

SBATCH = r'''
import json, os, re, subprocess, sys
from pathlib import Path

state = Path(os.environ["STANDIN_STATE"])
args, script_path, wrap = sys.argv[1:], None, None
env, deps, i = dict(os.environ), [], 0
while i < len(args):
    a = args[i]
    if a.startswith("--export="):
        for kv in a.split("=", 1)[1].split(",")[1:]:
            k, v = kv.split("=", 1)
            env[k] = v
    elif a.startswith("--dependency="):
        deps = a.split("=", 1)[1].split(",")
    elif a == "--wrap":
        wrap, i = args[i + 1], i + 1
    elif not a.startswith("-"):
        script_path = a
    i += 1
text = Path(script_path).read_text() if script_path else "#!/bin/bash\n" + wrap + "\n"
directives = dict(re.findall(r"^#SBATCH --([\w-]+)=?(.*)$", text, flags=re.M))
deps += [d for d in directives.get("dependency", "").split(",") if d]
done = {}
log = state / "submissions.jsonl"
if log.exists():
    done = {r["job"]: r["ok"] for r in map(json.loads, log.read_text().splitlines())}
for d in deps:
    kind, job = d.split(":", 1)
    if job not in done or (kind == "afterok" and not done[job]):
        sys.exit(f"sbatch stand-in: dependency {d} not satisfied")
counter = state / "counter"
job = str(int(counter.read_text()) + 1 if counter.exists() else 1000)
counter.write_text(job)
lo, hi = 0, 0
if "array" in directives:
    lo, hi = map(int, directives["array"].split("%")[0].split("-"))
    if hi - lo + 1 > int(os.environ.get("STANDIN_MAX_ARRAY", "1001")):
        sys.exit(f"sbatch: error: Batch job submission failed: Invalid job array specification ({hi - lo + 1})")
script = state / f"job{job}.sh"
script.write_text(text)
ok = True
for task in range(lo, hi + 1) if os.environ.get("STANDIN_RUN", "1") == "1" else ():
    tenv = dict(env, SLURM_JOB_ID=str(int(job) + task), SLURM_NODELIST="localhost", SLURM_NODEID="0",
                SLURM_PROCID="0", SLURM_JOB_NAME=directives.get("job-name", ""))
    if "array" in directives:
        tenv.update(SLURM_ARRAY_TASK_ID=str(task), SLURM_ARRAY_JOB_ID=job, SLURM_ARRAY_TASK_COUNT=str(hi - lo + 1))
    out = directives.get("output", str(state / "%j.out"))
    out = out.replace("%A", job).replace("%a", str(task)).replace("%j", tenv["SLURM_JOB_ID"])
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    with open(out, "a") as f:
        ok = subprocess.run(["bash", str(script)], env=tenv, stdout=f, stderr=subprocess.STDOUT).returncode == 0 and ok
with open(log, "a") as f:
    f.write(json.dumps({"job": job, "ok": ok, "name": directives.get("job-name"), "array": directives.get("array"),
                        "run_offset": env.get("RUN_OFFSET"), "deps": deps}) + "\n")
if not ok:
    sys.exit(f"sbatch stand-in: job {job} failed; see its output")
print(f"Submitted batch job {job}")
'''

SRUN = r'''
import os, sys
args, i = sys.argv[1:], 0
while i < len(args) and args[i].startswith("-"):
    i += 2 if args[i] in ("-n", "-N", "-c") else 1
os.execvp(args[i], args[i:])
'''

SCONTROL = r'''
import sys
if sys.argv[1:3] == ["show", "hostnames"]:
    print("\n".join(sys.argv[3].split(",")))
'''


def install(bin_dir: Path, state_dir: Path, max_array: int, run: bool = True) -> dict[str, str]:
    """Write the stand-ins into ``bin_dir``; return the env (PATH first) that makes datatrove call them.

    ``run=False``: ``sbatch`` records each submission and runs nothing (for the fast checks of what is submitted).
    """
    bin_dir.mkdir(parents=True, exist_ok=True)
    state_dir.mkdir(parents=True, exist_ok=True)
    for name, body in (("sbatch", SBATCH), ("srun", SRUN), ("scontrol", SCONTROL)):
        path = bin_dir / name
        path.write_text(f"#!{sys.executable}\n{body}")
        path.chmod(0o755)
    path = os.pathsep.join([str(bin_dir), str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    return {"PATH": path, "STANDIN_STATE": str(state_dir), "STANDIN_MAX_ARRAY": str(max_array),
            "STANDIN_RUN": "1" if run else "0"}


def submissions(state_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (state_dir / "submissions.jsonl").read_text().splitlines()]
