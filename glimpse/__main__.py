from glimpse.cli import run

run()
