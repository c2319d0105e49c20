"""The fairderm Streamlit dashboard (``fairderm dashboard``); see docs/dashboard.md."""
