"""Tools a user runs from the shell: `distml doctor` (is this machine or job set up right?) and
`distml bench` (what can its collectives and a DDP step do?)."""
