"""Pure decisions: inputs are plain data, outputs are decisions with stable reason codes. No I/O."""
