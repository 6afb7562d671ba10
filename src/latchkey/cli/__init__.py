"""latchkey.cli."""
