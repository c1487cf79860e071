"""Pure decisions: functions of spec and status with no I/O (item hashing, machine state, planning).

Kept apart from the adapters so they can be tested exhaustively with tables and properties, and so that the
"does this need applying" question is never tangled with the code that applies it.
"""
