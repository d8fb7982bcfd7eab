"""The cluster rehearsed on one machine: cluster.yaml run by Ray's own launcher and autoscaler.

`swaps.py` derives, at run time, the config `ray up` gets from cluster.yaml, and lists every
swap with its reason (`SWAPS`); `host.py` is the head "machine": sshd in its own process,
mount and network namespaces on this machine; `relay.py` is the SSH ProxyCommand that
reaches it; `autoscaling.py` turns cluster.yaml's worker types into Ray's fake multi-node
autoscaler; `timeline.py` records what happened when. The checks that use them are the
`cluster` tests (tests/cluster/); `make cluster-rehearsal` runs them all and prints the
timeline. docs/cluster.md says what this proves and what it cannot.
"""
