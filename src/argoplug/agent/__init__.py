"""The local Argo agent behind `argoplug run`: loads Workflow YAML, calls plugins as the agent pod does."""
