"""Interoperability with the original implementation (Bausch's RVQE, commit 400a5eb): converting its
checkpoints (`checkpoints`, `qrnn convert-reference`) and importing its dataset files (`data`,
`qrnn data import-original`). `commands` holds the command lines; nothing here imports torch at import time."""
