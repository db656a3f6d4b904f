"""What a user may give, and what they are told when it is wrong: the user-facing errors (`errors`:
ConfigError, DataError, WorkdirError, ...; each message names the flag, file or workdir), the range of
every integer a user gives (`limits`), and the one command-line prologue of every `python -m
hiabp_tf.<command>` (`cli`: bad input ends in one line and exit status 2).
Imports nothing else of the package: every other layer may import it."""
