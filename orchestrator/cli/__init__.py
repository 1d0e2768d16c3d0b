"""The command line: the product's Invoke tasks (`tasks`) and the `vcwave` console script (`program`)."""
