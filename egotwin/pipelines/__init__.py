"""Sampling pipelines: `EgoTwinPipeline` turns a prompt, a start frame and a start pose into video + motion."""

from egotwin.pipelines.pipeline_egotwin import EgoTwinPipeline, EgoTwinPipelineOutput, check_motion_lead

__all__ = ["EgoTwinPipeline", "EgoTwinPipelineOutput", "check_motion_lead"]
