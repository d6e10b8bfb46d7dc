"""gate_agent."""
