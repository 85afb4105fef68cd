"""Meta-RL speed: environment steps per second and the parts of one meta-iteration.

1. Environment steps per second (one step of one episode = one step), random
   standard-normal raw actions (as the initial policy, log std 0, would give; the
   envs clip or map them), drawn before the clock starts, resets included:

   * sampler:       the training sampler (``sample_episodes``): the batched env
                    with a fresh 64x64 Gaussian policy evaluated once per step
                    for all 800 episodes, then the advantages (baseline fit, GAE),
                    ``--batched-rounds`` rounds per block (its own actions);
   * batched:       the tensor env (``make_batched``) stepping 40 tasks x 20
                    episodes = 800 episodes at once, ``--batched-rounds`` rounds
                    of reset + ``horizon`` steps per block (for the half-cheetah:
                    ``mujoco.rollout`` with ``--threads`` threads);
   * batched-loop:  half-cheetah only, the bit-exact backend (one ``MjData`` per
                    episode, a Python loop of ``mj_step``);
   * HalfCheetah-v5: half-cheetah only, gymnasium's own env (not our task env),
                    one episode at a time, ``--env-steps`` steps per block;
   * single:        ``gymnasium.make(gym_id)`` (with gymnasium's wrappers), one
                    episode at a time, ``--env-steps`` steps per block;
   * unwrapped:     the same env without gymnasium's wrappers (what the
                    wrappers cost);
   * SyncVectorEnv: 40 copies of ``gymnasium.make(gym_id)``, one task each,
                    ``autoreset_mode=SAME_STEP`` (an ended episode restarts
                    within the step that ended it, so every ``step`` call is 40
                    real transitions; the default NEXT_STEP spends one extra call
                    per episode on the resets), ``--env-steps`` steps per block.

2. One meta-iteration (``RLAlgorithm.step``) of each preset, split into sampling
   (stepping envs + policy, all sampling phases), the inner steps taken at
   sampling time and the outer step (the presets' ProMP: its Adam epochs; with
   ``--set outer_optimizer=trpo --set prior_return_weight=0``, TRPO's gradient, conjugate gradient on
   Fisher-vector products and line search), after one warm-up iteration per preset.
   The iterations train the model, so the parameters (and TRPO's number of line
   search backtracks, on which its time depends) change between repeats.

3. With ``--reference`` (TRPO presets only: ``--set outer_optimizer=trpo --set prior_return_weight=0``): each preset is also timed with the reference TRPO step
   (:mod:`mmaml.rl.trpo_reference`, the implementation the default step replaced and
   is tested against) as the preset name with ``[reference]`` in part 2, and both
   steps are timed on the very same rollouts from the very same parameters
   (restored before each step), so that the two take the same line search and their
   ratio is the step's speed-up alone.

Timing blocks of all variants (and of all presets) alternate in one process, so
that a busy machine slows them alike; medians over the repeats are reported,
with the process's CPU time over wall time of each part (about the number of
threads when the process had its cores to itself, less when it had to share).

    python benchmarks/bench_rl.py [--threads 1] [--repeats 5] [--json FILE]
    python benchmarks/bench_rl.py --skip-envs --presets rl-pointmass-4modes-maml,rl-pointmass-4modes-mumomaml
    python benchmarks/bench_rl.py --skip-envs --presets rl-navigation-maml,rl-navigation-maml:fisher_second_order=false
    python benchmarks/bench_rl.py --skip-envs --reference --repeats 5 --set outer_optimizer=trpo --set prior_return_weight=0 --set normalize_actions=false
    python benchmarks/bench_rl.py --skip-iterations --envs navigation-bimodal --env-steps 50000
    python benchmarks/bench_rl.py --envs cheetah-speed --presets rl-cheetah-speed-maml,rl-cheetah-speed-mumomaml \
        --batched-rounds 2 --threads 2
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import time

import numpy as np
import torch

DEFAULT_ENVS = "navigation-bimodal,pointmass-4modes"
DEFAULT_PRESETS = "rl-navigation-maml,rl-navigation-mumomaml"
TASKS, EPISODES = 40, 20
ENV_VARIANTS = ("sampler", "batched", "batched-loop", "single", "HalfCheetah-v5", "unwrapped", "SyncVectorEnv")


# --- machine ------------------------------------------------------------------------------


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load() -> tuple[float, float, float] | None:
    try:
        return os.getloadavg()
    except OSError:
        return None


def cpu_pressure_total() -> float | None:
    """Seconds during which some runnable task waited for a CPU (Linux PSI), or None."""
    try:
        with open("/proc/pressure/cpu") as f:
            for line in f:
                if line.startswith("some"):
                    return int(line.split("total=")[1]) / 1e6
    except (OSError, IndexError, ValueError):
        pass
    return None


def machine_info(threads: int) -> dict:
    import gymnasium

    return {
        "torch": torch.__version__,
        "gymnasium": gymnasium.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "cpu": cpu_model(),
        "cpus": os.cpu_count(),
        "threads": threads,
        "loadavg_start": load(),
    }


class Clock:
    """Wall and process CPU time of a block."""

    def __enter__(self):
        self.wall0, self.cpu0 = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self.wall0
        self.cpu = time.process_time() - self.cpu0


def summary(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "all": values}


# --- 1. environment steps -----------------------------------------------------------------


def env_runners(name: str, args) -> dict:
    """For each variant, a function running one timing block and returning the steps it took."""
    import gymnasium
    from gymnasium.vector import AutoresetMode, SyncVectorEnv

    import mmaml.rl.envs  # noqa: F401  (registers the gymnasium ids)
    from mmaml.rl.envs.registry import ENVIRONMENTS, make_batched, make_goals
    from mmaml.rl.policy import GaussianMLPPolicy
    from mmaml.rl.sampler import sample_episodes

    spec = ENVIRONMENTS[name]
    gym_id = spec.gym_id
    gen = torch.Generator().manual_seed(0)
    goal_dist = make_goals(name)

    # batched: rounds of reset + horizon steps of T x E episodes
    batched = make_batched(name, args.threads)
    horizon, action_dim = batched.horizon, batched.action_dim
    batched_actions = torch.randn(horizon, TASKS, EPISODES, action_dim, generator=gen)

    def batched_runner(env):
        def run() -> int:
            for _ in range(args.batched_rounds):
                goals, _ = goal_dist.sample(TASKS, gen)
                env.reset(goals, EPISODES, generator=gen)
                for t in range(horizon):
                    env.step(batched_actions[t])
            return args.batched_rounds * horizon * TASKS * EPISODES

        return run

    policy = GaussianMLPPolicy(batched.observation_dim, action_dim, (64, 64))

    def run_sampler() -> int:
        with torch.no_grad():
            for _ in range(args.batched_rounds):
                goals, _ = goal_dist.sample(TASKS, gen)
                sample_episodes(batched, policy, goals, EPISODES, gen)
        return args.batched_rounds * horizon * TASKS * EPISODES

    # single gymnasium env: whole episodes, a new goal every EPISODES episodes
    episodes = max(1, args.env_steps // horizon)
    goals_np = goal_dist.sample(TASKS, gen)[0].double().numpy()
    rng = np.random.default_rng(0)
    single_actions = list(rng.standard_normal((episodes * horizon, action_dim)).astype(np.float32))

    def make_single_runner(env):
        env.reset(seed=0)

        def run() -> int:
            i = 0
            for ep in range(episodes):
                options = {"goal": goals_np[(ep // EPISODES) % TASKS]} if ep % EPISODES == 0 else None
                env.reset(options=options)
                for _ in range(horizon):
                    env.step(single_actions[i])
                    i += 1
            return episodes * horizon

        return run

    wrapped = gymnasium.make(gym_id)
    if wrapped.spec.max_episode_steps != horizon or wrapped.unwrapped.horizon != horizon:
        raise RuntimeError(f"{gym_id}: horizon differs from the batched env's {horizon}")
    extra = {}
    if spec.mujoco:  # gymnasium's own HalfCheetah-v5, and the bit-exact backend
        from mmaml.rl.envs.half_cheetah import BatchedHalfCheetah

        reference = gymnasium.make("HalfCheetah-v5", max_episode_steps=horizon)
        reference.reset(seed=0)

        def run_reference() -> int:
            i = 0
            for _ in range(episodes):
                reference.reset()
                for _ in range(horizon):
                    reference.step(single_actions[i])
                    i += 1
            return episodes * horizon

        extra = {"HalfCheetah-v5": run_reference,
                 "batched-loop": batched_runner(BatchedHalfCheetah(batched.task, backend="loop"))}
    unwrapped = gymnasium.make(gym_id).unwrapped

    # SyncVectorEnv: one copy per task; whole episodes of every copy per block
    vector = SyncVectorEnv([lambda: gymnasium.make(gym_id) for _ in range(TASKS)],
                           autoreset_mode=AutoresetMode.SAME_STEP)
    vector.reset(seed=0)
    for i, e in enumerate(vector.envs):
        e.unwrapped.set_task(goals_np[i])
    vector_calls = max(1, round(args.env_steps / (TASKS * horizon))) * horizon
    vector_actions = list(rng.standard_normal((vector_calls, TASKS, action_dim)).astype(np.float32))

    def run_vector() -> int:
        for a in vector_actions:
            vector.step(a)
        return vector_calls * TASKS

    runners = {"sampler": run_sampler, "batched": batched_runner(batched), "single": make_single_runner(wrapped),
               "unwrapped": make_single_runner(unwrapped), "SyncVectorEnv": run_vector, **extra}
    return {v: runners[v] for v in ENV_VARIANTS if v in runners}


def bench_envs(args) -> dict:
    names = [n for n in args.envs.split(",") if n]
    runners = {name: env_runners(name, args) for name in names}
    for name in names:  # warm-up block of every variant
        for run in runners[name].values():
            run()
    rates = {name: {v: [] for v in runners[name]} for name in names}
    cpu = {name: {v: [] for v in runners[name]} for name in names}
    steps = {name: {} for name in names}
    for _ in range(args.repeats):
        for name in names:
            for v, run in runners[name].items():
                with Clock() as c:
                    n = run()
                steps[name][v] = n
                rates[name][v].append(n / c.wall)
                cpu[name][v].append(c.cpu / c.wall)
    out = {}
    for name in names:
        r = rates[name]
        out[name] = {
            "steps_per_block": steps[name],
            "steps_per_second": {v: summary(r[v]) for v in r},
            "cpu_over_wall": {v: statistics.median(cpu[name][v]) for v in r},
            "speedup_batched_over": {v: summary([b / s for b, s in zip(r["batched"], r[v])]) for v in r if v != "batched"},
            "speedup_sampler_over": {v: summary([b / s for b, s in zip(r["sampler"], r[v])]) for v in r if v != "sampler"},
        }
    return out


def print_envs(result: dict, args) -> None:
    print(f"## Environment steps per second (horizon 100, random actions, {args.repeats} alternating blocks)\n")
    print(f"batched: {TASKS} tasks x {EPISODES} episodes at once; SyncVectorEnv: {TASKS} copies (SAME_STEP autoreset);"
          " single/unwrapped: one episode at a time. Steps per block in brackets.\n")
    print("| env | variant | steps/s (median) | min | max | CPU/wall | batched speed-up (median, min-max) "
          "| sampler speed-up (median, min-max) |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")

    def ratio(res, key, v):
        if v not in res[key]:
            return "-"
        u = res[key][v]
        digits = 0 if u["median"] >= 10 else 2
        return f"{u['median']:,.{digits}f}x ({u['min']:,.{digits}f}-{u['max']:,.{digits}f}x)"

    for name, res in result.items():
        for v, s in res["steps_per_second"].items():
            print(f"| {name} | {v} ({res['steps_per_block'][v]:,}) | {s['median']:,.0f} | {s['min']:,.0f} | "
                  f"{s['max']:,.0f} | {res['cpu_over_wall'][v]:.2f} | {ratio(res, 'speedup_batched_over', v)} "
                  f"| {ratio(res, 'speedup_sampler_over', v)} |")
    print()


# --- 2. meta-iterations -------------------------------------------------------------------


PARTS = ("sample", "adapt", "outer", "other", "total")
REFERENCE = " [reference]"


def bench_iterations(args) -> dict:
    from mmaml.rl.algorithm import RLAlgorithm
    from mmaml.rl.trpo_reference import reference_trpo_step
    from mmaml.engine.config import apply_overrides, parse_assignment
    from mmaml.presets import resolve

    overrides = dict(parse_assignment(s) for s in args.set)
    presets = [p for p in args.presets.split(",") if p]
    if args.reference:
        presets = [v for p in presets for v in (p, f"{p}{REFERENCE}")]
    algos, build_seconds, warmup_seconds, configs = {}, {}, {}, {}
    for preset in presets:
        # "preset:key=value:key=value" times the preset with its own overrides, beside the plain one
        name, *own = preset.removesuffix(REFERENCE).split(":")
        config = resolve(name)
        if config.task != "rl":
            raise SystemExit(f"{name} is not an RL preset")
        values = {**overrides, **dict(parse_assignment(s) for s in own)}
        config = (apply_overrides(config, values) if values else config).validate()
        configs[preset] = config
        if preset.endswith(REFERENCE) and config.outer_optimizer != "trpo":
            raise SystemExit(f"--reference swaps in the reference TRPO step, and {name} uses outer_optimizer "
                             f"{config.outer_optimizer}: add --set outer_optimizer=trpo --set prior_return_weight=0")
        t0 = time.perf_counter()
        torch.manual_seed(0)
        algos[preset] = RLAlgorithm(config, torch.device(args.device), torch.Generator().manual_seed(0))
        if preset.endswith(REFERENCE):
            algos[preset].trpo = reference_trpo_step
        build_seconds[preset] = time.perf_counter() - t0
    for preset in presets:
        t0 = time.perf_counter()
        algos[preset].step()
        warmup_seconds[preset] = time.perf_counter() - t0
    times = {p: {part: [] for part in PARTS} for p in presets}
    rows = {p: [] for p in presets}
    cpu = {p: [] for p in presets}
    for _ in range(args.repeats):
        for preset in presets:
            with Clock() as c:
                row = algos[preset].step()
            parts = {"sample": row["sample_seconds"], "adapt": row["adapt_seconds"], "outer": row["outer_seconds"]}
            parts["other"] = c.wall - sum(parts.values())
            parts["total"] = c.wall
            for part, seconds in parts.items():
                times[preset][part].append(seconds)
            rows[preset].append(row)
            cpu[preset].append(c.cpu / c.wall)
    out = {}
    for preset in presets:
        t, config = times[preset], configs[preset]
        last = f"return_step{config.inner_steps}"
        out[preset] = {
            "env": config.env,
            "method": config.method,
            "meta_batch_size": config.meta_batch_size,
            "episodes_per_task": config.episodes_per_task,
            "inner_steps": config.inner_steps,
            "build_seconds": build_seconds[preset],
            "warmup_seconds": warmup_seconds[preset],
            "seconds": {part: summary(t[part]) for part in PARTS},
            "sample_fraction": statistics.median(s / tot for s, tot in zip(t["sample"], t["total"])),
            "outer_optimizer": config.outer_optimizer,
            # TRPO's line-search backtracks, or PPO's and ProMP's epochs not taken
            "backtracks": summary([r.get("backtracks", r.get("skipped_epochs", 0)) for r in rows[preset]]),
            "rejected_steps": sum(r["rejected_steps"] for r in rows[preset]),
            "cpu_over_wall": statistics.median(cpu[preset]),
            "return_step0": [r["return_step0"] for r in rows[preset]],
            f"return_step{config.inner_steps}": [r[last] for r in rows[preset]],
            "rows": rows[preset],
        }
    return out


def print_iterations(result: dict, args) -> None:
    print(f"## One meta-iteration per preset ({args.repeats} alternating iterations after 1 warm-up, seconds)\n")
    print("The iterations train the model: parameters, returns and line-search backtracks change between repeats.")
    print("sampling = stepping envs + policy (all sampling phases); adapt = inner steps at sampling time; "
          "outer = the outer step (TRPO: gradient, CG on Fisher-vector products, line search; PPO and ProMP: "
          "their Adam epochs); other = the rest of `step()`.\n")
    print("| preset | sampling | adapt | outer step | other | total (median) | total min-max | sampling share "
          "| backtracks or skipped epochs (median) | CPU/wall |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for preset, res in result.items():
        s = res["seconds"]
        print(f"| {preset} | {s['sample']['median']:.3f} | {s['adapt']['median']:.3f} | {s['outer']['median']:.3f} | "
              f"{s['other']['median']:.3f} | {s['total']['median']:.3f} | {s['total']['min']:.3f}-{s['total']['max']:.3f}"
              f" | {100 * res['sample_fraction']:.0f}% | {res['backtracks']['median']:g} | {res['cpu_over_wall']:.2f} |")
    print()
    for preset, res in result.items():
        ref = result.get(f"{preset}{REFERENCE}")
        if ref is not None:
            ratios = [r / d for r, d in zip(ref["seconds"]["total"]["all"], res["seconds"]["total"]["all"])]
            u = summary(ratios)
            print(f"- {preset}: an iteration with the reference TRPO step over one with the default: "
                  f"{u['median']:.2f}x (repeats {u['min']:.2f}-{u['max']:.2f}x; their line searches differ)")
    for preset, res in result.items():
        k = res["inner_steps"]
        r0 = ", ".join(f"{x:.1f}" for x in res["return_step0"])
        rk = ", ".join(f"{x:.1f}" for x in res[f"return_step{k}"])
        bt = ", ".join(f"{x:g}" for x in res["backtracks"]["all"])
        print(f"- {preset} ({res['method']} on {res['env']}, {res['meta_batch_size']} tasks x "
              f"{res['episodes_per_task']} episodes, {k} inner step(s)): built in {res['build_seconds']:.2f}s, "
              f"warm-up iteration {res['warmup_seconds']:.2f}s; backtracks per iteration [{bt}], "
              f"rejected steps {res['rejected_steps']:g}; return step 0 [{r0}], step {k} [{rk}]")
    print()


# --- 3. the TRPO step against the reference step, on the same rollouts ------------------------


def bench_trpo(args) -> dict:
    import copy

    from mmaml.rl.algorithm import RLAlgorithm
    from mmaml.rl.trpo_reference import reference_trpo_step
    from mmaml.engine.config import apply_overrides, parse_assignment
    from mmaml.presets import resolve

    overrides = dict(parse_assignment(s) for s in args.set)
    steps = {"default": None, "reference": reference_trpo_step}
    out = {}
    for preset in [p for p in args.presets.split(",") if p]:
        name, *own = preset.split(":")
        values = {**overrides, **dict(parse_assignment(s) for s in own)}
        config = (apply_overrides(resolve(name), values) if values else resolve(name)).validate()
        if config.outer_optimizer != "trpo":
            raise SystemExit(f"--reference times the TRPO step, and {name} uses outer_optimizer "
                             f"{config.outer_optimizer}: add --set outer_optimizer=trpo --set prior_return_weight=0")
        torch.manual_seed(0)
        algo = RLAlgorithm(config, torch.device(args.device), torch.Generator().manual_seed(0))
        algo.step()  # leave the initial parameters, as training does
        rollouts, mine = algo.sample()
        start = copy.deepcopy(algo.model.state_dict())
        steps["default"] = algo.trpo
        seconds = {v: [] for v in steps}
        stats = {}
        for _ in range(args.repeats + 1):  # the first round warms up
            for variant, step in steps.items():
                algo.model.load_state_dict(start)
                t0 = time.perf_counter()
                stats[variant] = step(algo.model, rollouts, algo.settings, algo.dist, mine.start,
                                      config.meta_batch_size)
                seconds[variant].append(time.perf_counter() - t0)
        seconds = {v: t[1:] for v, t in seconds.items()}
        out[preset] = {
            "seconds": {v: summary(t) for v, t in seconds.items()},
            "speedup": summary([r / d for r, d in zip(seconds["reference"], seconds["default"])]),
            "backtracks": {v: s.backtracks for v, s in stats.items()},
            "loss_after": {v: s.loss_after for v, s in stats.items()},
        }
    return out


def print_trpo(result: dict, args) -> None:
    print(f"## The TRPO step against the reference step (same rollouts, same start; {args.repeats} alternating "
          "repeats after 1 warm-up, seconds)\n")
    print("| preset | default step | reference step | speed-up (median, min-max) | backtracks (default / reference) |")
    print("|---|---:|---:|---:|---:|")
    for preset, res in result.items():
        s, u, b = res["seconds"], res["speedup"], res["backtracks"]
        print(f"| {preset} | {s['default']['median']:.3f} | {s['reference']['median']:.3f} | "
              f"{u['median']:.2f}x ({u['min']:.2f}-{u['max']:.2f}x) | {b['default']} / {b['reference']} |")
    print()


# --- main ---------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=1, help="torch threads for every part (default 1)")
    parser.add_argument("--repeats", type=int, default=5, help="alternating timing blocks; medians are reported")
    parser.add_argument("--presets", default=DEFAULT_PRESETS,
                        help="comma-separated RL presets, each optionally with its own overrides: PRESET:KEY=VALUE:...")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="config override applied to every preset (repeatable)")
    parser.add_argument("--envs", default=DEFAULT_ENVS, help="comma-separated env names")
    parser.add_argument("--env-steps", type=int, default=20000,
                        help="steps per block of the gymnasium variants (whole episodes)")
    parser.add_argument("--batched-rounds", type=int, default=50,
                        help=f"rounds of {TASKS}x{EPISODES} episodes per block of the batched env")
    parser.add_argument("--device", default="cpu", help="device of the meta-iterations (cpu, cuda); envs: CPU")
    parser.add_argument("--skip-envs", action="store_true")
    parser.add_argument("--skip-iterations", action="store_true")
    parser.add_argument("--reference", action="store_true",
                        help="also time the reference TRPO step (part 2 and, on the same rollouts, part 3)")
    parser.add_argument("--malloc", choices=("keep", "default"), default="keep",
                        help="keep: glibc keeps freed memory for reuse, as training sets it "
                             "(mmaml.engine.allocator); default: glibc's own settings")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    torch.set_num_threads(args.threads)
    if args.malloc == "keep":
        from mmaml.engine.allocator import keep_freed_memory

        keep_freed_memory()

    info = machine_info(args.threads)
    started, pressure0 = time.perf_counter(), cpu_pressure_total()
    la = info["loadavg_start"]
    print("# Meta-RL benchmark\n")
    print(f"torch {info['torch']}, gymnasium {info['gymnasium']}, numpy {info['numpy']}, Python {info['python']}; "
          f"CPU {info['cpu']} ({info['cpus']} logical CPUs); torch threads {torch.get_num_threads()}; "
          f"malloc {args.malloc}")
    if la is not None:
        busy = "other processes were loading the machine" if la[0] > 0.5 else "machine idle"
        print(f"load average at start (1/5/15 min): {la[0]:.2f} / {la[1]:.2f} / {la[2]:.2f} "
              f"on {info['cpus']} CPUs ({busy})")
        if args.threads > 1 and la[0] + args.threads > (info["cpus"] or 1):
            print(f"warning: {args.threads} torch threads on a machine with {info['cpus']} CPUs and load {la[0]:.1f}: "
                  "with more runnable threads than CPUs, multi-threaded torch can be several times slower "
                  "than one thread")
    print()

    results: dict = {"machine": info, "args": vars(args)}
    if not args.skip_envs:
        results["envs"] = bench_envs(args)
        print_envs(results["envs"], args)
    if not args.skip_iterations:
        results["iterations"] = bench_iterations(args)
        print_iterations(results["iterations"], args)
    if args.reference:
        results["trpo"] = bench_trpo(args)
        print_trpo(results["trpo"], args)

    results["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    results["machine"]["loadavg_end"] = load()
    la_end = results["machine"]["loadavg_end"]
    pressure1, wall = cpu_pressure_total(), time.perf_counter() - started
    if pressure0 is not None and pressure1 is not None:
        results["machine"]["cpu_pressure_some"] = (pressure1 - pressure0) / wall
    print(f"peak RSS {results['peak_rss_mb']:.0f} MB; run took {wall:.0f}s"
          + (f"; load average at end {la_end[0]:.2f} / {la_end[1]:.2f} / {la_end[2]:.2f}" if la_end else "")
          + (f"; some task waited for a CPU during {100 * results['machine']['cpu_pressure_some']:.0f}% of the run"
             " (Linux PSI)" if "cpu_pressure_some" in results["machine"] else ""))
    print("CPU/wall = process CPU time over wall time (up to the thread count; below it when the process had to "
          "wait for a CPU, though spinning threads count as busy)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
