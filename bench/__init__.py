"""Squall's benchmark suite: our own load generator, floor server, runner and report.

Not part of the test suite. It measures Squall, a bare Tornado floor and ActionHero side by side on
one machine, in one run, because the machine is noisy and only same-run ratios are comparable.
Run ``python -m bench --help`` from the repository root; see bench/README.md.
"""
