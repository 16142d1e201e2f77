"""dxops tests (a regular package: a dependency of the sagemaker SDK installs a top-level `tests`
package into site-packages, which would otherwise shadow this one)."""
