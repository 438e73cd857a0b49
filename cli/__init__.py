"""The typer CLI: option parsing, output formatting, exit codes. No logic lives here."""
