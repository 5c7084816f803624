# bmsctl: the PC tool (issue 13). `python -m tools.bmsctl --help`.
