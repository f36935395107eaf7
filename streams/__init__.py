"""The data plane: workers, the publisher SDK and moderation policies."""
