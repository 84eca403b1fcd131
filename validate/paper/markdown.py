"""README.md of the paper report (placeholder, filled in below)."""
def write_markdown(out):
    pass
