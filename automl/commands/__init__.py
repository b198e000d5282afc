"""The verbs users type besides a search run (`automl predict ...`): one thin argparse module per verb.

Each module has `main(argv) -> exit code`; automl/cli.py imports only the module of the verb that runs.
Library modules never parse argv.
"""
