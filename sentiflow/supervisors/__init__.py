"""Erlang/OTP-style supervisors: child specs, strategies, restart types and intensity."""
