"""`argoplug check`: a conformance report for any executor plugin server, rule by rule of CONTRACT §2–§4.

`command` (the command line) resolves the target and prints the report; `driver` sends the requests and
times the start; `prober` makes the calls; `rules` and `replies` judge what came back; `vectors` holds the
requests captured from Argo's agent. Nothing is imported here: import the module you need.
"""
