"""The control plane: controller, supervisor, local broker and the `modq` CLI."""
