"""latchkey.http."""
