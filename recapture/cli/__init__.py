"""The ``recapture`` command: a thin layer over the library.

Each subcommand parses its options and calls one public function; whatever the CLI does a
user can do in Python. User errors (bad file, option or config key) print one line naming
what is at fault and exit with status 2; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from recapture import progress
from recapture.errors import ConfigError, RecaptureError

EXIT_USER_ERROR = 2

# Each subcommand registers (add_arguments, run) here, in the order shown by --help.
_COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable]] = {}


def command(name: str, help_text: str):
    """Register ``add_arguments`` for a subcommand; the decorated function runs it."""

    def register(run: Callable[[argparse.Namespace], int | None]):
        def decorator(add_arguments: Callable[[argparse.ArgumentParser], None]):
            _COMMANDS[name] = (help_text, add_arguments, run)
            return add_arguments

        return decorator

    return register


# ----------------------------------------------------------------------------- helpers
def _global_options() -> argparse.ArgumentParser:
    """--quiet and --debug, accepted after the subcommand as well as before it.

    The subcommand's copies default to SUPPRESS so they never reset a value given before
    the subcommand.
    """
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS
    )
    common.add_argument(
        "--quiet", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS
    )
    return common


def _add_out_dir(p: argparse.ArgumentParser, help_text: str) -> None:
    """An output directory given as ``-o/--out DIR`` or as the positional OUT."""
    p.add_argument("out_pos", nargs="?", type=Path, metavar="OUT", help=f"{help_text}")
    p.add_argument("-o", "--out", type=Path, metavar="DIR", help="the same as OUT")


def _out_dir(args: argparse.Namespace) -> Path:
    if args.out is not None and args.out_pos is not None and args.out != args.out_pos:
        raise RecaptureError(f"two output directories given: {args.out_pos} and -o {args.out}")
    out = args.out if args.out is not None else args.out_pos
    if out is None:
        raise RecaptureError("no output directory given (OUT or -o DIR)")
    return out


def _need(path: Path, kind: str) -> None:
    """A missing input is reported first, before options are checked or work starts."""
    if kind == "dir":
        if not path.is_dir():
            raise RecaptureError(
                f"{path}: {'not a directory' if path.exists() else 'no such directory'}"
            )
    elif not path.exists():
        raise RecaptureError(f"{path}: no such file")
    elif path.is_dir():
        raise RecaptureError(f"{path}: is a directory, expected a file")


def _check_inputs(args: argparse.Namespace) -> None:
    for dest, kind in getattr(args, "_inputs", ()):
        value = getattr(args, dest, None)
        for item in value if isinstance(value, list) else [value]:
            if item is not None:
                _need(Path(item), kind)


# ----------------------------------------------------------------------------- init
def _run_init(args: argparse.Namespace) -> int:
    from recapture.pipelines.scaffold import write_templates

    out = _out_dir(args)
    for path in write_templates(out):
        print(path)
    progress.info(
        f"put the extracts in {out / 'extracts'} (police.csv, iom.csv), adjust the definitions "
        f"in {out / 'sources'}, then: recapture run {out / 'pipeline.toml'}"
    )
    return 0


@command("init", "write a commented pipeline.toml and police/IOM source-definition templates")(
    _run_init
)
def _add_init(p: argparse.ArgumentParser) -> None:
    _add_out_dir(p, "directory to write pipeline.toml and sources/*.toml into (never overwrites)")


# ----------------------------------------------------------------------------- simulate
def _run_simulate(args: argparse.Namespace) -> int:
    from recapture.synthetic import format_summary, load_config, run_simulation

    out = _out_dir(args)
    config = load_config(args.config, size=args.size, seed=args.seed)
    world, paths = run_simulation(config, out)
    print(format_summary(world.summary, paths))
    return 0


@command("simulate", "simulate a registration world with known truth")(_run_simulate)
def _add_simulate(p: argparse.ArgumentParser) -> None:
    _add_out_dir(p, "output directory (police.csv, iom.csv, truth/, manifest.json)")
    p.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="simulation TOML; every key optional (see docs/simulator.md)",
    )
    p.set_defaults(_inputs=(("config", "file"),))
    p.add_argument(
        "--size",
        type=int,
        metavar="N",
        help="true population size N (default 23,000; overrides the file)",
    )
    p.add_argument(
        "--seed", type=int, metavar="S", help="random seed (default 20180630; overrides the file)"
    )


# ----------------------------------------------------------------------------- validate
def _run_validate(args: argparse.Namespace) -> int:
    import datetime as dt

    from recapture.validation import builtin_definitions, validate_extracts

    inputs: list[tuple[str, str]] = [(path, definition) for definition, path in args.input or []]
    for path, _ in inputs:
        _need(Path(path), "file")
    for path in args.extracts:
        name = Path(path).name.casefold()
        # the longest built-in name the file name starts with: police.csv, police_ok.csv
        named = [d for d in builtin_definitions() if name.startswith(d.casefold())]
        if not named:
            raise RecaptureError(
                f"{path}: cannot tell the source definition from the file name (it starts with "
                f"none of {', '.join(builtin_definitions())}); use --input DEFINITION {path}"
            )
        inputs.append((path, max(named, key=len)))
    if not inputs:
        raise RecaptureError("no extracts given (EXTRACT ... or --input DEFINITION PATH)")
    as_of = None
    if args.as_of:
        try:
            as_of = dt.date.fromisoformat(args.as_of)
        except ValueError:
            raise RecaptureError(f"--as-of: not an ISO date (yyyy-mm-dd): {args.as_of!r}") from None
    result = validate_extracts(inputs, args.out, as_of=as_of, run_id=args.run_id)
    totals = result.summary["totals"]
    print(
        f"{totals['rows_in']} rows in: {totals['records']} records, "
        f"{totals['quarantined']} quarantined -> {args.out}"
    )
    return 0


@command("validate", "validate and standardise raw extracts into records.parquet")(_run_validate)
def _add_validate(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "extracts",
        nargs="*",
        metavar="EXTRACT",
        help="extract whose file name starts with a built-in definition's name "
        "(police.csv, iom_2018.csv)",
    )
    p.add_argument(
        "-i",
        "--input",
        nargs=2,
        action="append",
        metavar=("DEFINITION", "PATH"),
        help="an extract and its source definition (built-in name or .toml path); repeatable",
    )
    p.add_argument(
        "-o",
        "--out",
        required=True,
        metavar="DIR",
        help="directory for records.parquet, quarantine.parquet, validation_summary.json",
    )
    p.add_argument(
        "--as-of",
        metavar="YYYY-MM-DD",
        help="date that 'future' dates are judged against (default: today)",
    )
    p.add_argument("--run-id", help="run id written into the artifacts' metadata")
    p.set_defaults(_inputs=(("extracts", "file"),))


# ----------------------------------------------------------------------------- link
def _run_link(args: argparse.Namespace) -> int:
    from recapture.linkage import LinkageSettings
    from recapture.linkage.engine import read_records
    from recapture.linkage.engines import EngineOptions, link_and_write
    from recapture.loader import key_value

    settings = (
        LinkageSettings.from_toml(args.settings) if args.settings else LinkageSettings.default()
    )
    if args.threshold is not None:
        settings.threshold = args.threshold
        settings.check()
    if args.engine != "spark" and (args.spark_conf or args.spark_master):
        raise ConfigError("--spark-master and --spark-conf need --engine spark", key="--engine")
    options = EngineOptions(
        engine=args.engine,
        spark_master=args.spark_master or "local[2]",
        spark_conf=dict(key_value(kv, key="--spark-conf") for kv in args.spark_conf),
    )
    result, paths = link_and_write(read_records(args.records), settings, args.out, options)
    m = result.metrics
    print(
        f"{m['records']:,} records → {m['clustering']['clusters']:,} persons; "
        f"{m['candidate_pairs']:,} pairs scored, {m['links']:,} links at p ≥ {result.threshold:.3g}; "
        f"written to {paths['pairs'].parent}"
    )
    return 0


@command("link", "deduplicate and link records into persons (Fellegi–Sunter)")(_run_link)
def _add_link(p: argparse.ArgumentParser) -> None:
    p.add_argument("records", type=Path, help="records.parquet from 'recapture validate'")
    p.add_argument(
        "-o",
        "--out",
        type=Path,
        required=True,
        metavar="DIR",
        help="directory for pairs.parquet, clusters.parquet, linkage_model.json, "
        "linkage_metrics.json",
    )
    p.add_argument(
        "--settings", type=Path, help="linkage settings TOML (default: built-in settings)"
    )
    p.add_argument(
        "--threshold", type=_threshold_arg, help="match-probability threshold, or 'auto'"
    )
    p.add_argument(
        "--engine",
        choices=("polars", "spark"),
        default="polars",
        help="polars (local, the default) or spark (needs pyspark and Java 17)",
    )
    p.add_argument(
        "--spark-master",
        default=None,
        metavar="URL",
        help="Spark master for --engine spark (default: local[2])",
    )
    p.add_argument(
        "--spark-conf",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a Spark setting for --engine spark (repeatable), e.g. spark.driver.memory=8g",
    )
    p.set_defaults(_inputs=(("records", "file"), ("settings", "file")))


def _threshold_arg(text: str) -> float | str:
    if text == "auto":
        return text
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("a probability between 0 and 1, or 'auto'") from None


# ----------------------------------------------------------------------------- estimate
# in its own module (the largest command); importing it here registers it in --help order
from recapture.cli import estimate as _estimate  # noqa: E402,F401


# ----------------------------------------------------------------------------- run
def _run_run(args: argparse.Namespace) -> int:
    from recapture.pipelines.run import format_run, run_pipeline

    result = run_pipeline(
        args.config,
        run_dir=args.run_dir,
        force=args.force,
        until=args.until,
        allow_other_files=args.allow_other_files,
    )
    print(format_run(result))
    if not result.manifest["reconciliation"]["ok"]:
        return 1
    return 1 if args.strict and result.manifest.get("failed_estimates") else 0


@command("run", "run the whole pipeline from a pipeline.toml")(_run_run)
def _add_run(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", type=Path, help="pipeline TOML (see docs/pipeline.md)")
    p.add_argument(
        "-o",
        "--out",
        "--run-dir",
        dest="run_dir",
        metavar="DIR",
        type=Path,
        default=None,
        help="run directory (default: the config's run.dir)",
    )
    p.set_defaults(_inputs=(("config", "file"),))
    p.add_argument(
        "--force", action="store_true", help="redo every stage even if its inputs are unchanged"
    )
    p.add_argument(
        "--until",
        choices=("validate", "link", "persons", "estimate", "report"),
        help="stop after this stage (--until persons writes persons.parquet, no estimates)",
    )
    p.add_argument(
        "--allow-other-files",
        dest="allow_other_files",
        action="store_true",
        help="run in a directory that holds files recapture did not write (they are left alone)",
    )
    p.add_argument(
        "--strict",
        action="store_true",
        help="exit 1 when an estimator or its linkage-aware interval failed (default: exit 0, "
        "failures recorded in estimates.json and the manifest)",
    )


# ----------------------------------------------------------------------------- report
def _run_report(args: argparse.Namespace) -> int:
    from recapture.reports import write_reports

    written = write_reports(args.run_dir, out_dir=args.out, show_names=args.show_names)
    for path in written.values():
        print(path)
    return 0


@command("report", "write HTML reports for a run directory")(_run_report)
def _add_report(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "run_dir",
        metavar="RUN_DIR",
        type=Path,
        help="run directory holding the artifacts of the stages that have run",
    )
    p.add_argument(
        "-o",
        "--out",
        metavar="DIR",
        type=Path,
        default=None,
        help="where to write the reports (default: RUN_DIR/reports)",
    )
    p.set_defaults(_inputs=(("run_dir", "dir"),))
    p.add_argument(
        "--show-names",
        action="store_true",
        help="show names, birth dates and V-numbers in the linkage review sample and the explorer, and free "
        "text (police units, unrecognised nationality strings) instead of counts "
        "(personal data; the page says so at the top)",
    )


# ----------------------------------------------------------------------------- review
def _run_review(args: argparse.Namespace) -> int:
    import polars as pl

    from recapture.errors import InputError
    from recapture.io import ARTIFACTS, artifact_path, read_json, write_json
    from recapture.linkage.review import export_review_sample, review_error_rates

    if args.action == "export":
        run = args.run_dir
        for name in (ARTIFACTS["pairs"].file, ARTIFACTS["records"].file):
            if not (run / name).is_file():
                raise InputError(f"no {name} in the run directory", file=str(run / name))
        threshold = args.threshold
        if threshold is None:
            model = artifact_path(run, "linkage_model")
            threshold = float(read_json(model)["threshold"]) if model.is_file() else 0.5
        out = args.out or artifact_path(run, "review_sample")
        sample = export_review_sample(
            pl.read_parquet(artifact_path(run, "pairs")),
            pl.read_parquet(artifact_path(run, "records")),
            out,
            threshold=threshold,
            sample_size=args.n,
            seed=args.seed,
        )
        print(f"{sample.height:,} pairs around p = {threshold:g} written to {out}")
        print(
            "It holds names and birth dates in clear: review it on the secure workstation, fill in 'label' "
            "(match / non-match / unsure), save it as review_labels.csv in the run directory for the report."
        )
        return 0
    estimate = review_error_rates(args.labels, allow_unlabelled=args.allow_unlabelled)
    lo, hi = estimate.precision_ci
    mlo, mhi = estimate.missed_link_rate_ci
    print(
        f"{estimate.n_labelled:,} labelled pairs ({estimate.n_unsure:,} unsure) at threshold {estimate.threshold:g}"
    )
    print(f"  precision above the threshold  {estimate.precision:.4f}  ({lo:.4f} – {hi:.4f})")
    print(
        f"  missed-link rate below it      {estimate.missed_link_rate:.4f}  ({mlo:.4f} – {mhi:.4f})"
    )
    print(
        f"  estimated false links {estimate.estimated_false_links:,.1f}, missed links {estimate.estimated_missed_links:,.1f}"
    )
    if args.out:
        write_json(estimate.to_dict(), args.out)
    return 0


@command(
    "review", "clerical review: export pairs around the threshold, estimate error rates from labels"
)(_run_review)
def _add_review(p: argparse.ArgumentParser) -> None:
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    text = "write a stratified sample of scored pairs to CSV (names in clear)"
    export = actions.add_parser("export", help=text, description=text, parents=[_global_options()])
    export.add_argument(
        "run_dir", type=Path, help="run directory with pairs.parquet and records.parquet"
    )
    export.add_argument(
        "-o", "--out", type=Path, help="CSV to write (default RUN_DIR/review_sample.csv)"
    )
    export.set_defaults(_inputs=(("run_dir", "dir"),))
    export.add_argument("--n", type=int, default=300, help="pairs to sample (default 300)")
    export.add_argument("--threshold", type=float, help="match threshold (default: the run's)")
    export.add_argument("--seed", type=int, default=0, help="seed of the sample")
    text = "precision and missed-link rate from a labelled sample"
    estimate = actions.add_parser(
        "estimate", help=text, description=text, parents=[_global_options()]
    )
    estimate.add_argument("labels", type=Path, help="the labelled review CSV")
    estimate.add_argument(
        "--allow-unlabelled", action="store_true", help="leave empty labels out instead of failing"
    )
    estimate.add_argument("-o", "--out", type=Path, help="write the estimate as JSON here")
    estimate.set_defaults(_inputs=(("labels", "file"),))


# ----------------------------------------------------------------------------- demo
def _run_demo(args: argparse.Namespace) -> int:
    from recapture.pipelines.demo import format_demo, run_demo

    result = run_demo(
        args.out,
        seed=args.seed,
        size=args.size,
        realistic=args.realistic,
        imputations=args.imputations,
        force=args.force,
    )
    print(format_demo(result))
    return 0


@command("demo", "simulate a world, run the whole pipeline on it and compare with the truth")(
    _run_demo
)
def _add_demo(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "-o",
        "--out",
        type=Path,
        metavar="DIR",
        default=Path("demo-run"),
        help="output directory (default ./demo-run)",
    )
    p.add_argument(
        "--seed", type=int, default=20180630, help="seed of the simulated world and the run"
    )
    p.add_argument("--size", type=int, default=None, help="true population size N (default 23,000)")
    p.add_argument(
        "--realistic",
        action="store_true",
        help="simulate the realistic default world (frailty, one-inflation, time at risk) "
        "instead of one that meets the models' assumptions",
    )
    p.add_argument(
        "--imputations",
        type=int,
        default=20,
        help="imputed linkages for the linkage-aware intervals (0 = off)",
    )
    p.add_argument("--force", action="store_true", help="resimulate and redo every stage")


# ----------------------------------------------------------------------------- main
class _VersionAction(argparse.Action):
    """--version, with the version looked up only when asked for."""

    def __init__(
        self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help=None
    ):
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        import recapture

        parser._print_message(f"recapture {recapture.__version__}\n", sys.stdout)
        parser.exit()


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser; with ``only``, the options of that subcommand alone are built.

    Building a subcommand's options may import its stage (``estimate`` lists the models),
    so ``recapture --help`` and ``--version`` build none of them and start fast.
    """
    parser = argparse.ArgumentParser(
        prog="recapture",
        description="Population-size estimation from linked administrative registrations.",
        epilog="--quiet and --debug may also follow the command. "
        "'recapture COMMAND --help' describes a command.",
    )
    parser.add_argument(
        "--version", action=_VersionAction, help="show program's version number and exit"
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    parser.add_argument(
        "--quiet", action="store_true", help="no progress messages or bars on stderr"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (help_text, add_arguments, run) in _COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text, parents=[_global_options()])
        if only is None or name == only:
            add_arguments(p)
        p.set_defaults(_run=run)
    return parser


def _command_of(argv: list[str]) -> str | None:
    """The subcommand named in ``argv``: the first word that is not an option (the global
    options take no values)."""
    for word in argv:
        if not word.startswith("-"):
            return word if word in _COMMANDS else None
    return None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(only=_command_of(argv) or "")
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return EXIT_USER_ERROR
    progress.set_quiet(args.quiet)
    try:
        _check_inputs(args)
        return int(args._run(args) or 0)
    except KeyboardInterrupt as exc:
        stage = getattr(exc, "stage", None)
        where = f" during stage '{stage}' (recorded in the manifest)" if stage else ""
        print(f"recapture {args.command}: interrupted{where}", file=sys.stderr)
        return 130
    except (RecaptureError, FileNotFoundError, PermissionError, IsADirectoryError) as exc:
        if args.debug:
            raise
        print(f"recapture {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_USER_ERROR


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, FileNotFoundError | IsADirectoryError | PermissionError) and exc.filename:
        return f"{Path(exc.filename)}: {exc.strerror}"
    return " ".join(str(exc).split("\n")[0:1]) or type(exc).__name__


def cli_reference() -> str:
    """Markdown reference of every command, generated from the parser (docs/cli.md)."""
    import os

    saved = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "100"  # argparse wraps help to the terminal width
    try:
        parser = build_parser()
        parts = ["```text", parser.format_help().rstrip(), "```"]
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        for name, p in sub.choices.items():
            parts += ["", f"## recapture {name}", "", "```text", p.format_help().rstrip(), "```"]
        return "\n".join(parts) + "\n"
    finally:
        if saved is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = saved


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
