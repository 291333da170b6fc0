"""Tests of the OpenVINO execution provider."""
