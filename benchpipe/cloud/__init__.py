"""AWS plumbing for the aws provider: sessions, tags, spot launches, DynamoDB tables, setup, janitor."""
