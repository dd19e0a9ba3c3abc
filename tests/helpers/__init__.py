"""What tests share: servers they start, data they build, the project's deployment files as tools read them."""
