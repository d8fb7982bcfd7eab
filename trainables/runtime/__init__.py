"""How a run uses its device: which device (and the refusal of a missing one), the precision
and memory format of the forward pass, torch.compile with its fallback, and host-to-device
copies that do not stall the host. Defaults leave a CPU run exactly as it was."""
