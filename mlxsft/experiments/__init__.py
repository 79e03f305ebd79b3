"""``mlxsft experiment``: the claims SFT practice rests on, measured by mlxsft itself on this machine.

    mlxsft experiment curation --out runs/experiments/curation     # curation beats volume?

An experiment trains a few *arms* (a config with overrides: other data, another method) over several seeds, at
an equal budget, and scores each on held-out questions with the before/after machinery of ``mlxsft train``
(learned-answer totals and the forgetting score). The framework, shared by every experiment:

  ``arms``     ``Setup`` (model, backend, steps, seeds, the held-out questions: what every arm shares), ``Arm``
               (one config variant), ``run_arm`` (``mlxsft.train.run_training`` with the compare table on, then
               the arm's numbers from its ``compare.json`` and ``metrics.jsonl``; an arm already measured is read
               back, not retrained), ``check_equal_budget``
  ``stats``    mean and spread over seeds
  ``outputs``  ``OUT/results.json``, ``OUT/table.md``, ``OUT/*.png``
  ``events``   the progress callback (the CLI renders it: ``cli/ui/experiment.py``; nothing here prints)

Experiments: ``curation`` (with ``pool``, the mixed-quality pool with planted defects, and ``curate_pool``, the
curation pipeline and its precision and recall against the planted labels).
"""
