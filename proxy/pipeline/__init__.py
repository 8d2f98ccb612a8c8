"""The call pipeline: ordered steps on plain values (steps.py), one provider
end to end (relay.py), the single call and discover (call.py), fan-out."""
