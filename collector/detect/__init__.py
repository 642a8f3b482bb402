"""Detection: snapshots in, findings out (pure; numpy over many cards)."""
