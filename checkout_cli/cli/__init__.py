"""The command-line face: parse flags, call the backend, render. No business logic here."""
