"""The local Argo agent behind `argoplug run`: loads Workflow YAML, calls plugins as the agent pod does.

`command` is `argoplug run`; `workflow`, `schema` and `checks` load and check the files; `engine` runs the
workflow through `templates` (a template call), `steps`, `dags` (with `dag`, the DAG's graph), `loops`,
`retries` and `leaves` (plugin, HTTP and suspend nodes), over `nodes`, `substitution` and `expressions`;
`client` calls plugins as the agent does, `plugins` and `containers` start their sidecars, `http_template`
runs HTTP templates; `report`, `output` and `humanize` show the result.

One import circle is by design: a template call runs steps, DAGs and leaves, and a step or task is itself
a template call, so `templates` imports `steps`, `dags` and `leaves` inside the functions that run them
and they import `templates` back. No other module of the package is in a circle (tests/test_quality.py).
"""
