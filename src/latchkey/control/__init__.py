"""latchkey.control."""
