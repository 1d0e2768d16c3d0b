"""One module per user command. Each exposes a function the Invoke task calls; it returns what to print."""
