"""Stage 5 of a run, plan: desired vs observed vs what jitpol owns -> a Plan value that carries
its own time (`diff.py`, pure), its renderings (`render.py`: text, JSON, Markdown, pure), and the
run's context around it (`build.py`: notes, rejected grants, re-deliveries, order).
"""
