"""The Antipode (SOSP'23) stand-in: DeathStarBench's post-notification path across two regions."""
