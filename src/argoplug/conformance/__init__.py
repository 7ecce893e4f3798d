"""`argoplug check`: a conformance report for any executor plugin server, rule by rule of docs/contract.md.

`command` (the command line) resolves the target and prints the report; `driver` sends the requests and
times the start; `prober` makes the calls; `rules` and `replies` judge what came back; `contract` holds
each rule's clause (its section of docs/contract.md and the link to it); `vectors` holds the requests
captured from Argo's agent. Nothing is imported here: import the module you need.
"""
