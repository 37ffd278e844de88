"""The contract every stage shares: typed models, migrations, engines and all SQL."""
