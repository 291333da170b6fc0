"""The cuda execution provider."""
