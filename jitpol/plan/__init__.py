"""Pure planning: desired vs observed vs managed -> a Plan value, and its renderings."""
